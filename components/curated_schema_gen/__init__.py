"""CuratedSchemaGen: SchemaGen's inference, then the problem spec's rules applied to the schema."""

from components.curated_schema_gen.component import CuratedSchemaGen

__all__ = ["CuratedSchemaGen"]
