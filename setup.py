"""
Packaging for twisted-chat.

The package list is explicit: C{twisted.plugins} is listed so that the twistd
plugin file ships beside Twisted's own plugins, and C{tests} is left out on
purpose (C{find_packages()} would install it as a top-level package).
"""

import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"',
    (HERE / "twisted_chat" / "__init__.py").read_text(encoding="utf-8"),
    re.M,
).group(1)

setup(
    name="twisted-chat",
    version=VERSION,
    description="A TCP chat server and client that notice a dead peer within seconds",
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.9",
    packages=[
        "twisted_chat",
        "twisted_chat.bench",
        "twisted_chat.client",
        "twisted_chat.cluster",
        "twisted_chat.room",
        "twisted.plugins",
    ],
    # The cluster's Lua scripts, read with importlib.resources.
    package_data={"twisted_chat.cluster": ["scripts/*.lua"]},
    install_requires=[
        "Twisted>=22.10",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "pytest-twisted>=1.14",
            "hypothesis>=6",
            # tests/system/test_bench.py runs the load tool.
            "hdrhistogram>=0.10",
            "tqdm>=4.60",
            # The cluster's tests run against a real redis-server.
            "txredisapi>=1.6",
            "hiredis>=2",
            # The TLS tests make a throwaway CA with cryptography.
            "pyOpenSSL>=21",
            "service_identity>=18.1",
            "cryptography>=3.1",
            "prometheus_client>=0.12",
            "bcrypt>=3.1",
        ],
        # bcrypt hashes in --auth-file (scrypt needs nothing).
        "accounts": [
            "bcrypt>=3.1",
        ],
        # --metrics: Prometheus exposition.
        "metrics": [
            "prometheus_client>=0.12",
        ],
        # --tls in the client, ssl: endpoints in the server.
        "tls": [
            "pyOpenSSL>=21",
            "service_identity>=18.1",
        ],
        # --redis: several nodes, one room (docs/cluster.rst).
        "cluster": [
            "txredisapi>=1.6",
            "hiredis>=2",
        ],
        # The load and chaos tool: python -m twisted_chat.bench.
        "bench": [
            "hdrhistogram>=0.10",
            "tqdm>=4.60",
        ],
        # The load tool's --plot.
        "plot": [
            "matplotlib>=3.5",
        ],
    },
    entry_points={
        "console_scripts": [
            "twisted-chat = twisted_chat.client:run",
            "twisted-chat-bench = twisted_chat.bench:run",
            "twisted-chat-passwd = twisted_chat.passwd:run",
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: Communications :: Chat",
    ],
)
