"""What the bench entry points share: corpus readers, scoring, a local site."""
