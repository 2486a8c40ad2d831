"""Apps on the gateway: confinement (bubblewrap, seccomp, cgroups); install follows."""
