"""Validation and health: rule-based errors and warnings before a run, for a generation config
(``POST /atelier/generations/validate``) and for every Atelier node of a graph (the nodes' health badges)."""
