"""The SDE models: spectra, optimizer dynamics, the moment integrator, SGD and Adam, sample paths."""
