"""WeCom (企业微信): the server-API client (token cache, rate limits, retries), a local
simulator of the API and of group robots, and callback message crypto."""
