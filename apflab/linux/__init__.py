"""The arm64 Linux guest of the qemu-linux target: its initramfs, its workload, its tables.

The image recipe (apflab/images/linux.py), the labgrid strategy (apflab/lab/linuxstrategy.py),
the suites in testcases/linux and the migration driver share these pieces.
"""
