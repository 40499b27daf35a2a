"""Quality metrics of generated images and the feature networks they use."""
