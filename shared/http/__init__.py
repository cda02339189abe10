"""The HTTP edge every Podium service shares: errors, middleware, health and serving."""
