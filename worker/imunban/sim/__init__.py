"""The local Tencent IM API simulator: request checks, faults and counters, served over loopback HTTP."""
