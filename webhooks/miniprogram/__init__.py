"""Mini-program message push: customer-service messages, XML or JSON."""
