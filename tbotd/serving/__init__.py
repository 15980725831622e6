"""`tbotd serve`: the local models over the JSON API and OIP v2, and their Triton/KServe export."""
