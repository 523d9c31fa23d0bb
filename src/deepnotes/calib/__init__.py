"""deepnotes.calib."""
