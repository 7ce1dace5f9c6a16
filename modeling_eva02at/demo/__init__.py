"""The demos: synthetic datasets in the real EK-100 MIR, EgoClip and Charades-Ego file formats that a small model
(:data:`.model.DEMO_MODEL_CONFIG`) learns in minutes on a CPU, and the motion-verb probe of what it learned."""
