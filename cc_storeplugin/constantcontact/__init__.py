"""constantcontact."""
