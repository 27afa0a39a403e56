"""Reading stores that live elsewhere: HTTP(S) and S3 locations, their credentials and
an on-disk cache. One package for the renderer, the proxy and every other remote reader.
"""
