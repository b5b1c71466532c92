"""Package data: the bundled MNIST sample (see scripts/make_mnist_sample.py)."""
