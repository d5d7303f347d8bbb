"""The model registry (`registry.store`): the only code that writes or reads the model store,
the promotion pointer, its history and the promoted model's reference window."""
