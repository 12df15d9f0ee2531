"""Pure API machinery: no I/O. Schemas, selectors, quantities, patches, protobuf."""
