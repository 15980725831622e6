"""Operations: logging, the HTTP ops endpoint, metrics."""
