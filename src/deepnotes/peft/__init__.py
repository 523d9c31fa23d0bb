"""deepnotes.peft."""
