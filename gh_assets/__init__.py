"""Crawl GitHub users into Redis and analyse them with pandas, as Dagster assets."""
