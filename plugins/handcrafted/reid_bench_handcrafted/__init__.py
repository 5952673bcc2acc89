"""The field's hand-crafted skeleton descriptors: D13 and D16."""
