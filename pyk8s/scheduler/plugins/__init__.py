"""In-tree scheduler plugins, one module each; ``registry`` maps names to factories."""
