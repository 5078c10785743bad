"""Model forward passes with hooks into activation stores, records and corpus scans."""
