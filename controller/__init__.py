"""Controller: the KG (stores, schema, validation, rules) and, later, the checks that decide
whether and how an edit is applied."""
