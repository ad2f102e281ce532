"""What a person reads: the terminal table, Markdown, trend plots."""
