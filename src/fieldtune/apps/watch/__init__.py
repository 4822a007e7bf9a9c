"""``fieldtune watch``: financial news monitoring — sentiment, topics and entities over time, with alerts."""
