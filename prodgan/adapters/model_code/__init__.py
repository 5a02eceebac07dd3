"""MLflow models-from-code entry points: each file is stored with its model instead of a pickle.

MLflow runs the stored file to build the pyfunc, so loading a prodgan model never unpickles
anything. prodgan itself never imports these modules (importing one calls `set_model`).
"""
