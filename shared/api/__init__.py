"""HTTP edges shared by the four functions: runtime access, auth seam, error mapping.

The functions in ``functions/*/main.py`` stay thin: they parse the request,
authenticate through ``auth``, call one use case of ``shared.app`` and map the
result (or the error, through ``errors``) to a response.
"""
