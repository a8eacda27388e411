"""Training package: builds the analyzer's EfficientNetB1 emotion model from FER2013.

Nothing heavy is imported here; Keras is imported inside the functions that need it.
"""
