"""Pure planners: health, placement, replica splits, DNS records. No I/O (an import contract)."""
