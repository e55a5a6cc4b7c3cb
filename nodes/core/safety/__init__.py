"""Safety: the violation log (``log.py``): who was refused or clamped, when, what they asked, what applied, why."""
