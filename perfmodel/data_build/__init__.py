"""Rebuild the derived parts of the shipped data (perfmodel/data) from the measured files: fitted
analytical constants, merged tables, operator glue, the cross-GPU band and the error bands.
`python -m specperf.perfmodel.data_build` (or `specperf data rebuild`) runs every step the manifest names.
The logic that used to live in scripts/ (error_bands, fit_operator_glue, merge_profiles,
cross_gpu_check, shape_check --report) lives here; the scripts are thin wrappers.
"""
