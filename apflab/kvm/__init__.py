"""KVM targets: the host side of apflab-vmm (guest_payloads/vmm, docs/vmm-channel.md).

``channel`` is the channel's grammar, ``link`` its transport, ``peer`` the host end of
one VMM connection, ``bridge`` the reference model as the live SDEI dispatcher of the
VMM's real vCPUs, ``announce`` the VMM's start-up line.
"""
