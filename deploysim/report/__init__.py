"""The release report (HTML and Markdown)."""
