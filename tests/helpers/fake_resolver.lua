--- A stand-in for mxprobe.net.dns in specs whose subject is not DNS (engine,
-- checks, policies, audits): every other *.test domain has "MX 10 mx.test",
-- mx.test is 127.0.0.1, and every PTR names mx.test.  Anything else is an
-- empty NOERROR answer.  Pass it as engine.new{ dns = ... }.
return {
  query = function(_, name, qtype)
    if qtype == "MX" and name:match("%.test$") and name ~= "mx.test" then
      return { rcode = "NOERROR", answers = { { type = "MX", preference = 10, host = "mx.test." } } }
    elseif qtype == "A" and name == "mx.test" then
      return { rcode = "NOERROR", answers = { { type = "A", address = "127.0.0.1" } } }
    elseif qtype == "PTR" then
      return { rcode = "NOERROR", answers = { { type = "PTR", host = "mx.test." } } }
    end
    return { rcode = "NOERROR", answers = {} }
  end,
}
