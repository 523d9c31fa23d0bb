"""deepnotes.video."""
