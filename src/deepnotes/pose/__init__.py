"""deepnotes.pose."""
