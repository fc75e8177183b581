"""Where data comes in: format parsers, Intake readers, catalog building, the demo data set."""
