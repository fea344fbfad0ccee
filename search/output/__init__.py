"""What a user takes away: citations of hits and reports (Markdown, JSON)."""
