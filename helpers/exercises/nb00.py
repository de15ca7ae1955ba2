"""00-setup: quiz on the engine, the client and the socket."""
from . import question

question("00.client", "You type `docker ps`. Which program lists the containers?",
         ["The docker CLI, by reading files on disk",
          "The Docker Engine (dockerd), answering an HTTP request the CLI sent over its socket",
          "The Linux kernel, directly"], 1,
         "The CLI and the Python SDK are both clients: they send HTTP requests to the engine's "
         "API over a socket (/var/run/docker.sock on Linux). The engine does the work and answers.")
question("00.desktop", "Why does Docker Desktop exist on Windows and macOS?",
         ["Containers there use the Windows or macOS kernel",
          "Containers need a Linux kernel, so Desktop runs the engine in a small Linux VM and "
          "makes it easy to use",
          "It is faster than the engine on Linux"], 1,
         "Linux containers share the Linux kernel of the machine that runs the engine. On Linux "
         "that is your own kernel; on Windows and macOS Desktop brings a Linux VM for the engine.")
question("00.kernel", "On a Linux laptop, a container's `uname -r` prints…",
         ["the host's kernel version", "a kernel version baked into the image",
          "nothing: containers have no kernel"], 0,
         "A container is a group of processes on the host's kernel; the image carries only user "
         "space (files), never a kernel. Lesson 07 compares this with a VM, which boots its own.")
question("00.chain", "You type `docker run busybox:1.35 true`. Which program asks the kernel to "
         "create the container's namespaces and cgroup?",
         ["dockerd itself", "runc, started by containerd on dockerd's request",
          "the docker CLI"], 1,
         "The CLI only sends the request. dockerd asks containerd to run the container; "
         "containerd starts runc, which asks the kernel for the namespaces and the cgroup, "
         "starts the program in them and exits. `docker version` lists the versions of all three.")
