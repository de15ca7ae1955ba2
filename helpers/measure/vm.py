"""A real virtual machine beside the containers (taught in 07): what notebooks import.

    from helpers.measure import vm
    vm.accelerator()                       # KVM or TCG, and why
    with vm.VM(f"echo {vm.READY}; uname -r", lesson=lesson) as guest:
        guest.wait_done()                  # the workload says it is ready, works, ends
    guest.output                           # ['6.1.0-...']
    vm.image_initramfs("busybox:1.35", lesson=lesson)   # a guest made of an image's files

The pieces live in a module each: `vmkit` (QEMU, the kernel, busybox, the accelerator),
`initramfs` (the guest's user space) and `guest` (one VM, whose QEMU runs on this machine or in
a container of the course's VM image).
"""
from helpers.measure.guest import (BootTimes, GuestTimeout, VM, VmMemory, bare_command, boot_s, command, deadline_for, disk_image)
from helpers.measure.initramfs import DONE, READY
from helpers.measure.vmkit import (MEMORY_MIB, Accelerator, VmKit, VmUnavailable, accelerator, available, build_initramfs, find_busybox, find_kernel, find_qemu, image_initramfs, kernel_modules, kvm_unusable_reason, kit, missing_advice, unpack_kernel)

__all__ = ["BootTimes", "GuestTimeout", "VM", "VmMemory", "bare_command", "boot_s", "command",
           "deadline_for", "disk_image", "DONE", "READY", "MEMORY_MIB", "Accelerator", "VmKit",
           "VmUnavailable", "accelerator", "available", "build_initramfs", "find_busybox",
           "find_kernel", "find_qemu", "image_initramfs", "kernel_modules", "kvm_unusable_reason", "kit",
           "missing_advice", "unpack_kernel"]
