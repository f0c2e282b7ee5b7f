"""Ground floor: errors, files, stopping, devices, statistics, paths and BLAS threads; imports nothing of semjscc above it."""
