"""Studies that test the seed document's claims with data (``jaxdl reproduce``)."""
