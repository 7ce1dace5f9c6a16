"""Training: retrieval losses (InfoNCE, EgoNCE, MI-MM, SMS) and the Trainer that wires them to the model."""
