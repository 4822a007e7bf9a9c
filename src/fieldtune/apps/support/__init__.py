"""``fieldtune support``: a customer-service assistant that answers with templates or hands off to a human."""
