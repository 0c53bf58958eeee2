"""The message contract (schema, envelope, topic registry) and the MQTT client."""
