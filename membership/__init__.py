"""The customer profile store: members, identities, stores, staff, relations, tags, traits, timeline."""
