"""WeaveDrive: Arweave-addressed data, signed, verified and admitted."""
