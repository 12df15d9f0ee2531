"""The kubelet: runs pods through the CRI runtime. Today: offline images."""
