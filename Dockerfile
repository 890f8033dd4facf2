# The image of the container action (action.yml: runs.using docker, image Dockerfile).
#
# ubuntu:24.04 carries the same glibc (2.39) as GitHub's ubuntu-24.04 runner, so a target
# built by an earlier step on the host runs in here. Tests (and registries without Docker
# Hub) build it from a local base: --build-arg BASE_IMAGE=localhost/NAME.
ARG BASE_IMAGE=ubuntu:24.04
FROM ${BASE_IMAGE}

# strace traces; gcc, make and the C library and kernel headers (linux-libc-dev holds
# <linux/io_uring.h>) run a policy's scenario.build; python3 runs the gate, and its
# headers (python3-dev) build the parser's C line filter (ci_gate/trace/_scan.c).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      strace gcc libc6-dev linux-libc-dev make python3 python3-venv python3-dev \
 && rm -rf /var/lib/apt/lists/*

# The gate's dependencies in a layer of their own, rebuilt only when pyproject.toml
# changes; a virtual environment because the distribution's Python is externally managed.
COPY pyproject.toml /src/pyproject.toml
RUN python3 -m venv /opt/syscall-gate \
 && python3 -c 'import tomllib; p = tomllib.load(open("/src/pyproject.toml", "rb")); print("\n".join(p["build-system"]["requires"] + p["project"]["dependencies"]))' > /tmp/requirements.txt \
 && /opt/syscall-gate/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The gate itself (no dev extras); setup.py builds the C line filter.
COPY README.md setup.py /src/
COPY policies /src/policies
COPY ci_gate /src/ci_gate
RUN /opt/syscall-gate/bin/pip install --no-cache-dir --disable-pip-version-check \
      --no-deps --no-build-isolation /src \
 && rm -rf /src \
 && ln -s /opt/syscall-gate/bin/syscall-gate /usr/local/bin/syscall-gate

ENV PYTHONUNBUFFERED=1 LANG=C.UTF-8
# No USER: GitHub runs container actions as root (and strace, the build and the sibling
# relaunch need it); ci_gate.action hands what it wrote back to the workspace's owner.
ENTRYPOINT ["/opt/syscall-gate/bin/python", "-m", "ci_gate.action"]
