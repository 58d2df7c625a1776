"""extra-routes: a CNI meta plugin that adds routes in the container.

An example of a third-party plugin written with pycni (docs/sdk.md).
"""
