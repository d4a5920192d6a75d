"""The services the stages share: config, records, caching, files, formats, processes, servers, errors."""
