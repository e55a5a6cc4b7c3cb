"""Helpers every capability shares (errors, atomic files, typed ids, YAML tables); depends on nothing else of Atelier."""
