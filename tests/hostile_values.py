"""Values a user might type into a subdomain field (a Shopify shop name, say) to make the
portal reach a host other than the one the catalog names: every one must be refused on
the field, by the credential form and the OAuth sign-in alike."""

HOSTILE_SHOPS = [
    "evil.com#.myshopify.com",
    "evil.com#",
    "evil.com",
    "a@b",
    "-x",
    "x-",
    "a" * 64,
    "127.0.0.1",
    "shop/../admin",
    "shop%2e",
    "sh op",
    "shop:443",
    "shop\r\nHost: evil",
    "[::1]",
    "shöp",
    "shop_1",
]
